"""``python -m bot search ...``: the product search index."""

from __future__ import annotations

import typer
from sqlalchemy.orm import Session

from bot.config import get_settings
from bot.db import get_engine

search_app = typer.Typer(help="Search index", no_args_is_help=True)


@search_app.command("build")
def search_build(force: bool = False) -> None:
    """Build the FAISS index, or reuse it when the catalog did not change."""
    from bot.search import index  # FAISS and NumPy: loaded by the commands that use them
    from bot.search.embeddings import get_embedder

    directory = get_settings().search_index_dir
    # Each step with its count on the terminal (the embedding takes minutes on a large catalog); nothing
    # when the output is no terminal.
    with index.console_progress() as progress, Session(get_engine()) as session:
        progress.step("loading the embedding model")
        embedder = get_embedder()
        if force:
            progress.step("reading the catalog")
            built = index.ProductIndex.build(index.catalog_texts(session), embedder, progress=progress)
            progress.step("saving the index")
            built.save(directory)
        else:
            built = index.ensure(session, embedder, directory, progress=progress)
    typer.echo(f"search index: {built.size} products in {directory}")
