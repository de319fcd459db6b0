"""The meeting domain, no Pipecat in it: commitments (rules, due dates, LLM extraction) and
reports (templates, the LLM report and its fact check)."""
