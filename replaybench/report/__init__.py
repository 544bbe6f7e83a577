"""The report and what leaves the run for people and machines: context, charts, templates,
e-mail, publishing, and the outcomes a CI job gates on (`outcomes`)."""
