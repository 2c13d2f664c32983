cp -r @FIXTURES@/store store && @STRATA@ crystallize store 5
