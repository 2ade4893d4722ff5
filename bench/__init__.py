"""`make bench` and `make bench-faults` (bench/README.md): run.py drives, config.py holds the
endpoints, targets and knobs, lanes.py the databases and servers, load.py wrk, report.py the
tables and RESULTS.md, faults.py the outage runs; lanetool.py is the Django side."""
