"""Raw files -> Examples: readers per source, filters, the embedded demo data, ``prepare``."""
