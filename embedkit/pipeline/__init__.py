"""The three stages — tokenize → session.run → pool — and the embedder that composes them."""
