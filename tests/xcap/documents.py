"""Sample documents of each application usage, as a presence client would write them."""

from __future__ import annotations

RL_NS = "urn:ietf:params:xml:ns:resource-lists"
RLS_NS = "urn:ietf:params:xml:ns:rls-services"
CP_NS = "urn:ietf:params:xml:ns:common-policy"
PR_NS = "urn:ietf:params:xml:ns:pres-rules"
PIDF_NS = "urn:ietf:params:xml:ns:pidf"

RESOURCE_LISTS = f"""<?xml version="1.0" encoding="UTF-8"?>
<resource-lists xmlns="{RL_NS}">
  <list name="friends">
    <display-name>Friends</display-name>
    <entry uri="sip:bob@example.com"><display-name>Bob</display-name></entry>
    <entry uri="sip:carol@example.org"/>
  </list>
  <list name="work">
    <entry uri="sip:dave@example.com"/>
  </list>
</resource-lists>
"""

RLS_SERVICES = f"""<?xml version="1.0" encoding="UTF-8"?>
<rls-services xmlns="{RLS_NS}" xmlns:rl="{RL_NS}">
  <service uri="sip:alice-buddies@example.com">
    <resource-list>http://127.0.0.1/xcap-root/resource-lists/users/sip:alice@example.com/index/~~/resource-lists/list%5b@name=%22friends%22%5d</resource-list>
    <packages><package>presence</package></packages>
  </service>
  <service uri="sip:alice-team@example.com">
    <list name="team">
      <rl:entry uri="sip:bob@example.com"/>
    </list>
    <packages><package>presence</package></packages>
  </service>
</rls-services>
"""

PRES_RULES = f"""<?xml version="1.0" encoding="UTF-8"?>
<cr:ruleset xmlns:cr="{CP_NS}" xmlns:pr="{PR_NS}">
  <cr:rule id="allow-bob">
    <cr:conditions>
      <cr:identity><cr:one id="sip:bob@example.com"/></cr:identity>
    </cr:conditions>
    <cr:actions><pr:sub-handling>allow</pr:sub-handling></cr:actions>
    <cr:transformations>
      <pr:provide-services><pr:all-services/></pr:provide-services>
      <pr:provide-persons><pr:all-persons/></pr:provide-persons>
      <pr:provide-devices><pr:all-devices/></pr:provide-devices>
      <pr:provide-all-attributes/>
    </cr:transformations>
  </cr:rule>
  <cr:rule id="block-carol">
    <cr:conditions>
      <cr:identity><cr:one id="sip:carol@example.org"/></cr:identity>
    </cr:conditions>
    <cr:actions><pr:sub-handling>polite-block</pr:sub-handling></cr:actions>
    <cr:transformations/>
  </cr:rule>
</cr:ruleset>
"""

OMA_PRES_RULES = f"""<?xml version="1.0" encoding="UTF-8"?>
<cr:ruleset xmlns:cr="{CP_NS}" xmlns:pr="{PR_NS}" xmlns:ocp="urn:oma:xml:xdm:common-policy"
            xmlns:op="urn:oma:xml:prs:pres-rules">
  <cr:rule id="wp_prs_allow_own">
    <cr:conditions>
      <cr:identity><cr:one id="sip:alice@example.com"/></cr:identity>
    </cr:conditions>
    <cr:actions><pr:sub-handling>allow</pr:sub-handling></cr:actions>
    <cr:transformations><op:provide-willingness>true</op:provide-willingness></cr:transformations>
  </cr:rule>
  <cr:rule id="rcs_allow_services_anonymous">
    <cr:conditions><ocp:anonymous-request/></cr:conditions>
    <cr:actions><pr:sub-handling>block</pr:sub-handling></cr:actions>
  </cr:rule>
  <cr:rule id="wp_prs_grantedcontacts">
    <cr:conditions>
      <ocp:external-list>
        <ocp:entry anc="http://127.0.0.1/xcap-root/resource-lists/users/sip:alice@example.com/index/~~/resource-lists/list%5B@name=%22friends%22%5D"/>
      </ocp:external-list>
    </cr:conditions>
    <cr:actions><pr:sub-handling>allow</pr:sub-handling></cr:actions>
  </cr:rule>
</cr:ruleset>
"""

PIDF = f"""<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="{PIDF_NS}" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid"
          xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" entity="sip:alice@example.com">
  <tuple id="t1">
    <status><basic>open</basic></status>
    <contact priority="0.8">sip:alice@example.com</contact>
  </tuple>
  <dm:person id="p1"><rpid:activities><rpid:away/></rpid:activities></dm:person>
  <note>Out to lunch</note>
</presence>
"""

#: auid -> (MIME type, document)
USAGE_DOCUMENTS = {
    "resource-lists": ("application/resource-lists+xml", RESOURCE_LISTS),
    "rls-services": ("application/rls-services+xml", RLS_SERVICES),
    "pres-rules": ("application/auth-policy+xml", PRES_RULES),
    "org.openmobilealliance.pres-rules": ("application/auth-policy+xml", OMA_PRES_RULES),
    "pidf-manipulation": ("application/pidf+xml", PIDF),
}
