cp -r @FIXTURES@/store store && @STRATA@ crystallize store 99999999999999999999
