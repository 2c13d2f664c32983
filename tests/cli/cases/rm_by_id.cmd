cp -r @FIXTURES@/store store && @STRATA@ rm store 2 10 && @STRATA@ ls store/notes.region
