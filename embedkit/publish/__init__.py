"""What a reader sees: figures drawn from analysis tables, and the report."""
