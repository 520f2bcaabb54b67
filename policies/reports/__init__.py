"""What every wing writes: the ``results.json`` and ``report.md`` documents, captioned videos and plots."""
