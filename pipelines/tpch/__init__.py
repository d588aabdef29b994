"""The TPC-H pipeline: its spec, gold SQL and data generator (tpchgen-cli drops)."""
