"""XCAP documents

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_TS = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql')


def upgrade() -> None:
    op.create_table(
        'xcap_documents',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('auid', sa.String(length=64), nullable=False),
        sa.Column('xui', sa.String(length=255), nullable=False),
        sa.Column('filename', sa.String(length=190), nullable=False),
        sa.Column('document', sa.Text().with_variant(mysql.MEDIUMTEXT(), 'mariadb').with_variant(mysql.MEDIUMTEXT(), 'mysql'), nullable=False),
        sa.Column('etag', sa.String(length=64), nullable=False),
        sa.Column('updated', _TS, nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_xcap_documents')),
        sa.UniqueConstraint('auid', 'xui', 'filename', name=op.f('uq_xcap_documents_auid_xui_filename')),
    )
    op.create_index(op.f('ix_xcap_documents_xui'), 'xcap_documents', ['xui'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_xcap_documents_xui'), table_name='xcap_documents')
    op.drop_table('xcap_documents')
