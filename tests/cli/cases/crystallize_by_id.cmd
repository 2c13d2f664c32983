cp -r @FIXTURES@/store store && @STRATA@ crystallize store 1 && @STRATA@ context store docs:intro
