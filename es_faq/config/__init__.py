"""Configuration: the one Settings object and its checks (`settings`), building it from a TOML file and
ES_FAQ_* variables (`load`), and the URLs in it, split and masked (`urls`)."""
