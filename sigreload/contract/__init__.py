"""The contract between the watcher and the broadcaster: a message left in a
private folder (``messages``), then a signal to the process found with psutil
(``discovery``)."""
