@STRATA@ inspect --help
