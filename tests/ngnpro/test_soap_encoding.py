"""Section-5 encoding, sans-I/O: the decoder's tolerance and the encoder's strictness."""

from __future__ import annotations

from decimal import Decimal

import pytest
from lxml import etree
from spyne.model.complex import Array, ComplexModel
from spyne.model.primitive import Boolean, Double, Integer, Unicode

from ngnpro.soap.encoding import Decoder
from ngnpro.soap.envelope import parse_request
from ngnpro.soap.faults import NGNProError
from ngnpro.soap.protocol import RpcEncodedSoap11
from ngnpro.soap.writer import escape, write

NS = "urn:AGProjects:NGNPro"


class Item(ComplexModel):
    __namespace__ = NS
    __type_name__ = "Item"
    _type_info = [("name", Unicode), ("value", Unicode)]


class Options(ComplexModel):
    __namespace__ = NS
    __type_name__ = "Options"
    _type_info = [("delete", Integer)]


class Thing(ComplexModel):
    __namespace__ = NS
    __type_name__ = "Thing"
    _type_info = [
        ("id", Item), ("count", Integer), ("ratio", Double), ("flag", Boolean), ("text", Unicode),
        ("tags", Array(Unicode)), ("items", Array(Item)), ("options", Options),
    ]


ENV = (
    '<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"'
    ' xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
    ' xmlns:SOAP-ENC="http://schemas.xmlsoap.org/soap/encoding/" xmlns:ns4="urn:AGProjects:NGNPro"'
    ' xmlns:ns5="urn:AGProjects:NGNPro:Test"><SOAP-ENV:Body><ns5:call>{params}</ns5:call>{extra}'
    "</SOAP-ENV:Body></SOAP-ENV:Envelope>"
)


def decode(thing_xml: str, extra: str = "", cls=Thing):
    parsed = parse_request(ENV.format(params=thing_xml, extra=extra).encode())
    return Decoder(parsed.ids).decode(cls, parsed.method[0], "thing")


def test_untyped_nested_struct_and_typed_scalars() -> None:
    t = decode('<thing xsi:type="ns4:Thing"><id><name xsi:type="xsd:string">a</name></id>'
               '<count xsi:type="xsd:int">3</count><flag xsi:type="xsd:boolean">true</flag></thing>')
    assert (t.id.name, t.count, t.flag) == ("a", 3, True)


@pytest.mark.parametrize("text,expected", [("1", True), ("0", False), ("true", True), ("false", False),
                                           ("TRUE", True)])
def test_booleans(text: str, expected: bool) -> None:
    assert decode(f"<thing><flag>{text}</flag></thing>").flag is expected


def test_numbers_as_strings_and_exponents() -> None:
    t = decode('<thing><count xsi:type="xsd:string"> 42 </count><ratio xsi:type="xsd:float">1.0E-5</ratio></thing>')
    assert t.count == 42 and t.ratio == pytest.approx(1e-5)
    assert decode("<thing><count>10.0</count></thing>").count == 10
    assert decode("<thing><count>true</count></thing>").count == 1


@pytest.mark.parametrize("member,text", [("count", "abc"), ("count", "1.5"), ("ratio", "nan"), ("flag", "maybe")])
def test_bad_scalars_are_fault_1040_naming_the_field(member: str, text: str) -> None:
    with pytest.raises(NGNProError) as exc:
        decode(f"<thing><{member}>{text}</{member}></thing>")
    assert exc.value.code == 1040 and f"thing.{member}" in exc.value.message


def test_null_and_empty() -> None:
    t = decode('<thing><text/><count/><tags xsi:type="SOAP-ENC:Array" SOAP-ENC:arrayType="xsd:anyType[0]"/></thing>')
    assert t.text is None and t.count is None and t.tags == []
    assert decode('<thing><text xsi:type="xsd:string"></text></thing>').text == ""


def test_struct_array_with_bare_struct_arraytype_and_offset() -> None:
    t = decode('<thing><items xsi:type="SOAP-ENC:Array" SOAP-ENC:arrayType="Struct[2]" SOAP-ENC:offset="[0]">'
               '<item><name xsi:type="xsd:string">a</name></item><item><name>b</name><junk>x</junk></item>'
               "</items></thing>")
    assert [i.name for i in t.items] == ["a", "b"]


def test_offset_and_position_place_items() -> None:
    t = decode('<thing><tags xsi:type="SOAP-ENC:Array" SOAP-ENC:arrayType="xsd:string[5]" SOAP-ENC:offset="[1]">'
               '<item>b</item><item SOAP-ENC:position="[3]">d</item></tags></thing>')
    assert t.tags == [None, "b", None, "d"]


@pytest.mark.parametrize("attrs", ['SOAP-ENC:offset="[999999999]"', 'SOAP-ENC:offset="[5000]"'])
def test_huge_offset_is_refused(attrs: str) -> None:
    with pytest.raises(NGNProError) as exc:
        decode(f'<thing><tags SOAP-ENC:arrayType="xsd:string[1]" {attrs}><item>x</item></tags></thing>')
    assert exc.value.code == 1040


def test_declared_size_beyond_the_items_is_not_padded() -> None:
    t = decode('<thing><tags SOAP-ENC:arrayType="xsd:string[99999]"><item>x</item></tags></thing>')
    assert t.tags == ["x"]


def test_empty_array_where_a_struct_is_expected() -> None:
    t = decode('<thing><options xsi:type="SOAP-ENC:Array" SOAP-ENC:arrayType="xsd:anyType[0]"/></thing>')
    assert isinstance(t.options, Options) and t.options.delete is None


def test_unknown_members_are_ignored() -> None:
    t = decode("<thing><changeDate>2020-01-01</changeDate><answerTimeout>5</answerTimeout><count>1</count></thing>")
    assert t.count == 1


def test_href_multiref() -> None:
    t = decode('<thing><id href="#r1"/><items SOAP-ENC:arrayType="Struct[2]"><item href="#r1"/><item href="#r2"/>'
               "</items></thing>",
               extra='<ns4:Item id="r1"><name>shared</name></ns4:Item><ns4:Item id="r2"><name>two</name></ns4:Item>')
    assert t.id.name == "shared"
    assert [i.name for i in t.items] == ["shared", "two"]


def test_unresolved_href_is_fault_9003() -> None:
    with pytest.raises(NGNProError) as exc:
        decode('<thing><id href="#missing"/></thing>')
    assert exc.value.code == 9003


def test_php_apache_map_as_struct() -> None:
    t = decode('<thing><id xsi:type="ns2:Map" xmlns:ns2="http://xml.apache.org/xml-soap">'
               "<item><key>name</key><value>m</value></item><item><key>bad key!</key><value>x</value></item></id></thing>")
    assert t.id.name == "m"


def test_struct_where_scalar_expected_is_refused() -> None:
    with pytest.raises(NGNProError) as exc:
        decode("<thing><count><a>1</a></count></thing>")
    assert exc.value.code == 1040


def test_params_by_name_then_position() -> None:
    class Msg(ComplexModel):
        __namespace__ = NS
        _type_info = [("sipId", Item), ("group", Unicode)]

    parsed = parse_request(ENV.format(params="<param0><name>x</name></param0><param1>g</param1>", extra="").encode())
    values = RpcEncodedSoap11.decode_params(Decoder(parsed.ids), Msg, parsed.method)
    assert values[0].name == "x" and values[1] == "g"
    parsed = parse_request(ENV.format(params="<group>g</group><sipId><name>y</name></sipId>", extra="").encode())
    values = RpcEncodedSoap11.decode_params(Decoder(parsed.ids), Msg, parsed.method)
    assert values[0].name == "y" and values[1] == "g"


XSI = "{http://www.w3.org/2001/XMLSchema-instance}type"
ENC = "{http://schemas.xmlsoap.org/soap/encoding/}"


def _encode(value) -> etree._Element:
    out: list[str] = []
    write(out, "return", Thing, value)
    root = etree.fromstring(f'<root xmlns:xsi="{XSI[1:XSI.index("}")]}" xmlns:SOAP-ENC="{ENC[1:-1]}" xmlns:ns1="{NS}">'
                            + "".join(out) + "</root>")
    return root[0]


def test_encoder_types_every_scalar_and_list() -> None:
    el = _encode(Thing(id=Item(name="a", value=None), count=3, ratio=Decimal("10.5000"), flag=False, text="x<&",
                       tags=["t"], items=[Item(name="i", value="v")], options=None))
    assert el.get(XSI) == "ns1:Thing"
    assert el.find("count").get(XSI) == "xsd:int"
    assert el.find("ratio").get(XSI) == "xsd:double" and el.find("ratio").text == "10.5000"
    assert el.find("flag").get(XSI) == "xsd:boolean" and el.find("flag").text == "false"
    assert el.find("options") is None and el.find("id/value") is None  # None is omitted
    tags = el.find("tags")
    assert tags.get(XSI) == "SOAP-ENC:Array" and tags.get(ENC + "arrayType") == "xsd:string[1]"
    assert list(tags.attrib)[0] == XSI  # xsi:type before arrayType (PHP reads attributes in order)
    assert tags.get(ENC + "offset") is None
    assert tags[0].tag == "item" and tags[0].get(XSI) == "xsd:string"
    items = el.find("items")
    assert items.get(ENC + "arrayType") == "ns1:Item[1]" and items[0].get(XSI) == "ns1:Item"


def test_encoder_empty_list_is_typed() -> None:
    el = _encode({"tags": [], "items": []})
    assert el.find("tags").get(ENC + "arrayType") == "xsd:string[0]"
    assert el.find("items").get(ENC + "arrayType") == "ns1:Item[0]"
    assert len(el.find("items")) == 0


def test_encoder_drops_xml_invalid_control_characters() -> None:
    el = _encode({"text": "a\x00b\x1bc\udcff"})
    assert el.find("text").text == "abc"


def test_escape_writes_text_as_libxml2_does() -> None:
    for text in ("plain", "a&b<c>d", "x\r\ny\tz", 'quote " and \'', "\u20ac \U0001F600 \xa0", "]]>", "%;--"):
        el = etree.Element("t")
        el.text = text
        assert etree.tostring(el, encoding="unicode") == f"<t>{escape(text)}</t>"
    assert escape("a\x00b\x1bc\udcff\ufffe") == "abc"


def test_struct_without_members_and_null_items() -> None:
    el = _encode({"id": {}, "items": [None, Item(name="n", value="")], "count": True})
    assert len(el.find("id")) == 0 and el.find("id").get(XSI) == "ns1:Item"
    items = el.find("items")
    assert items.get(ENC + "arrayType") == "ns1:Item[2]" and items[0].get(XSI) is None and len(items[0]) == 0
    assert items[1].find("value").text is None and items[1].find("value").get(XSI) == "xsd:string"
    assert el.find("count").text == "1"
