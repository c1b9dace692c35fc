"""Where records come from and go to: input discovery, sharding and reading through ``formats`` (one
class per file format), WARC/WET, HTML extraction, ``datasets`` folders, fsspec storage, the output
store, quarantine payloads, re-chunked compressed inputs and the sharded writers."""
