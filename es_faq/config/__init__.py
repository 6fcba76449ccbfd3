"""Configuration: the one Settings object and its checks (`settings`), building it from a TOML file and
ES_FAQ_* variables (`load`), the URLs in it, split and masked (`urls`), and the names of the indices
es-faq keeps beside a knowledge base, which an index alias may not take (`indices`)."""
