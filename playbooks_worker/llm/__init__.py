"""LLM playbooks (DESIGN §7): providers behind one small interface, and the interpreter that runs a
playbook's natural-language steps by executing the Python the model answers with, statement by statement."""
