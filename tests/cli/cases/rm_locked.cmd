cp -r @FIXTURES@/store store && echo 4242 >store/.strata.lock && flock store/.strata.lock @STRATA@ rm store docs 0
