"""Alembic environment: runs on the engine handed in by ngnpro.models.database.upgrade,
or on ``sqlalchemy.url`` when alembic is driven from the command line."""

from alembic import context
from sqlalchemy import create_engine

from ngnpro.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
