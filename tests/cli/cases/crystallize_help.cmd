@STRATA@ crystallize --help
