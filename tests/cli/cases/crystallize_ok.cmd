cp -r @FIXTURES@/store store && @STRATA@ crystallize store notes && @STRATA@ ls store/notes.region && @STRATA@ verify store/notes.region | sed 's#.*/##'
