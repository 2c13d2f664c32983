cp -r @FIXTURES@/store store && @STRATA@ rm store docs intro && @STRATA@ ls store/docs.region
