@STRATA@ -h
