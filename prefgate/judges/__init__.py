"""AI judges (RLAIF): one interface over HTTP, local-LM, pointwise, reward-model and programmatic backends.

Every pairwise judgment is made in both presentation orders, cached by (judge_id, pair_id, order), and carries
its raw output, parse status, tokens, latency, cost, judge id and constitution hash.
"""
