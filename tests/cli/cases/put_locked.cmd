cp -r @FIXTURES@/store store && echo 4242 >store/.strata.lock && flock store/.strata.lock @STRATA@ put store docs 0 - </dev/null
