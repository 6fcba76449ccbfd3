"""Measuring search on a faq-bench: recall, MRR and the decision (`evaluate`), fitting the decision
(`calibrate`), and what a dictionary change would do before it is made (`preview`)."""
