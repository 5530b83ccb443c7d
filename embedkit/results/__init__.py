"""What measurements leave behind: the record schema, provenance, atomic files, and tables of records."""
