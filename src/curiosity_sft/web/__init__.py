"""Dynamic web data: ``web ingest`` turns URLs into immutable, filtered snapshots ``prepare`` can mix in.

One module per concern: ``safety`` (which addresses), ``politeness`` (robots.txt, per-host
pacing), ``fetch`` (HTTP with limits), ``discover`` (URL lists, sitemaps, feeds), ``extract``
(trafilatura), ``quality`` (FineWeb's filters), ``state`` (content cache, journal), ``snapshot``
(layout, merging shards), ``ingest`` (the pipeline). See docs/WEB_DATA.md.
"""
