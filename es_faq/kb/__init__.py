"""The knowledge base: the FAQ record, versioned indices behind an alias, the vector cache, the
writer lock, and the tools that examine the knowledge base and its query log (doctor, report, Kibana)."""
