"""sip_domain_acl: a SIP domain's IP access list (fraud control, issue 15)

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'sip_domain_acl',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('domain_id', sa.Integer(), nullable=False),
        sa.Column('ip', sa.String(length=64), nullable=False),
        sa.Column('mask', sa.Integer(), nullable=False),
        sa.Column('tag', sa.String(length=64), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['domain_id'], ['sip_domains.id'],
                                name=op.f('fk_sip_domain_acl_domain_id_sip_domains'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sip_domain_acl')),
    )
    op.create_index(op.f('ix_sip_domain_acl_domain_id'), 'sip_domain_acl', ['domain_id'])


def downgrade() -> None:
    op.drop_index(op.f('ix_sip_domain_acl_domain_id'), table_name='sip_domain_acl')
    op.drop_table('sip_domain_acl')
