"""Presence publications and subscriptions

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_TS = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql')
_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_DOC = sa.Text().with_variant(mysql.MEDIUMTEXT(), 'mariadb').with_variant(mysql.MEDIUMTEXT(), 'mysql')


def upgrade() -> None:
    op.create_table(
        'presence_publications',
        sa.Column('id', _ID, nullable=False),
        sa.Column('presentity', sa.String(length=255), nullable=False),
        sa.Column('event', sa.String(length=32), nullable=False),
        sa.Column('etag', sa.String(length=64), nullable=False),
        sa.Column('document', _DOC, nullable=False),
        sa.Column('content_type', sa.String(length=64), nullable=False),
        sa.Column('expires_at', sa.BigInteger(), nullable=False),
        sa.Column('updated', _TS, nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_presence_publications')),
        sa.UniqueConstraint('etag', name=op.f('uq_presence_publications_etag')),
    )
    op.create_index(op.f('ix_presence_publications_presentity'), 'presence_publications', ['presentity'])
    op.create_index(op.f('ix_presence_publications_expires_at'), 'presence_publications', ['expires_at'])
    op.create_table(
        'presence_subscriptions',
        sa.Column('id', _ID, nullable=False),
        sa.Column('call_id', sa.String(length=190), nullable=False),
        sa.Column('from_tag', sa.String(length=128), nullable=False),
        sa.Column('to_tag', sa.String(length=64), nullable=False),
        sa.Column('event', sa.String(length=32), nullable=False),
        sa.Column('event_id', sa.String(length=64), nullable=False),
        sa.Column('presentity', sa.String(length=255), nullable=False),
        sa.Column('watcher', sa.String(length=255), nullable=False),
        sa.Column('watcher_uri', sa.String(length=512), nullable=False),
        sa.Column('presentity_uri', sa.String(length=512), nullable=False),
        sa.Column('remote_target', sa.String(length=512), nullable=False),
        sa.Column('route_set', sa.Text(), nullable=False),
        sa.Column('contact', sa.String(length=255), nullable=False),
        sa.Column('source', sa.String(length=128), nullable=False),
        sa.Column('local_cseq', sa.Integer(), nullable=False),
        sa.Column('remote_cseq', sa.Integer(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('reason', sa.String(length=32), nullable=False),
        sa.Column('action', sa.String(length=16), nullable=False),
        sa.Column('transformations', sa.String(length=255), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('resources', sa.Text(), nullable=False),
        sa.Column('document', _DOC, nullable=False),
        sa.Column('expires_at', sa.BigInteger(), nullable=False),
        sa.Column('created', _TS, nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_presence_subscriptions')),
        sa.UniqueConstraint('call_id', 'to_tag', 'event_id',
                            name=op.f('uq_presence_subscriptions_call_id_to_tag_event_id')),
    )
    op.create_index('ix_presence_subscriptions_presentity_event', 'presence_subscriptions',
                    ['presentity', 'event'])
    op.create_index(op.f('ix_presence_subscriptions_watcher'), 'presence_subscriptions', ['watcher'])
    op.create_index(op.f('ix_presence_subscriptions_expires_at'), 'presence_subscriptions', ['expires_at'])


def downgrade() -> None:
    op.drop_index(op.f('ix_presence_subscriptions_expires_at'), table_name='presence_subscriptions')
    op.drop_index(op.f('ix_presence_subscriptions_watcher'), table_name='presence_subscriptions')
    op.drop_index('ix_presence_subscriptions_presentity_event', table_name='presence_subscriptions')
    op.drop_table('presence_subscriptions')
    op.drop_index(op.f('ix_presence_publications_expires_at'), table_name='presence_publications')
    op.drop_index(op.f('ix_presence_publications_presentity'), table_name='presence_publications')
    op.drop_table('presence_publications')
