@STRATA@ --version
