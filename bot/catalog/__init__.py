"""Product catalog: model, demo generator, importers."""
