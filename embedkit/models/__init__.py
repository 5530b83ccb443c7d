"""What a model is and where its files come from: specs, sources, export variants, graph inspection, parity."""
