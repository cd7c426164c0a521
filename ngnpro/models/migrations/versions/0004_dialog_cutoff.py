"""dialogs: the prepaid tariff, the end time, the session timer, indexes on the cut-off times

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

_TS = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql')


def upgrade() -> None:
    with op.batch_alter_table('dialogs') as batch:
        batch.add_column(sa.Column('tariff', sa.Text(), nullable=False, server_default=''))
        batch.add_column(sa.Column('end_time', _TS, nullable=True))
        batch.add_column(sa.Column('session_interval', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('expires', _TS, nullable=True))
        batch.create_index(batch.f('ix_dialogs_deadline'), ['deadline'], unique=False)
        batch.create_index(batch.f('ix_dialogs_expires'), ['expires'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('dialogs') as batch:
        batch.drop_index(batch.f('ix_dialogs_expires'))
        batch.drop_index(batch.f('ix_dialogs_deadline'))
        batch.drop_column('expires')
        batch.drop_column('session_interval')
        batch.drop_column('end_time')
        batch.drop_column('tariff')
