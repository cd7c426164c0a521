"""rating tables: rates per profile and prefix, and RatingEntityProfiles

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 16:52:30.731004
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('rating_entity_profiles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('entity', sa.String(length=255), nullable=False),
    sa.Column('profile_weekday', sa.String(length=64), nullable=False),
    sa.Column('profile_weekday_alt', sa.String(length=64), nullable=False),
    sa.Column('profile_weekend', sa.String(length=64), nullable=False),
    sa.Column('profile_weekend_alt', sa.String(length=64), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('customer', sa.Integer(), server_default='0', nullable=False),
    sa.Column('reseller', sa.Integer(), server_default='0', nullable=False),
    sa.Column('create_date', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('change_date', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rating_entity_profiles')),
    sa.UniqueConstraint('entity', name=op.f('uq_rating_entity_profiles_entity'))
    )
    with op.batch_alter_table('rating_entity_profiles', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rating_entity_profiles_customer'), ['customer'], unique=False)
        batch_op.create_index(batch_op.f('ix_rating_entity_profiles_reseller'), ['reseller'], unique=False)

    op.create_table('rating_rates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('profile', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('price_per_minute', sa.Numeric(precision=14, scale=4), nullable=False),
    sa.Column('connect_fee', sa.Numeric(precision=14, scale=4), nullable=False),
    sa.Column('increment', sa.Integer(), nullable=False),
    sa.Column('min_duration', sa.Integer(), nullable=False),
    sa.CheckConstraint('increment >= 1', name=op.f('ck_rating_rates_increment')),
    sa.CheckConstraint('min_duration >= 0', name=op.f('ck_rating_rates_min_duration')),
    sa.CheckConstraint('price_per_minute >= 0 AND connect_fee >= 0', name=op.f('ck_rating_rates_prices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rating_rates')),
    sa.UniqueConstraint('profile', 'prefix', name=op.f('uq_rating_rates_profile_prefix'))
    )


def downgrade() -> None:
    op.drop_table('rating_rates')
    with op.batch_alter_table('rating_entity_profiles', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rating_entity_profiles_reseller'))
        batch_op.drop_index(batch_op.f('ix_rating_entity_profiles_customer'))

    op.drop_table('rating_entity_profiles')
