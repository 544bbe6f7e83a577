"""The report and what leaves the run for people and machines: the context (`context`), its
sections (`sections`, one Jinja partial each), the page (`page`), charts, the e-mail (`email`),
publishing and the Prefect artifacts (`publish`), the index of runs, and the outcomes a CI job
gates on (`outcomes`)."""
