cp -r @FIXTURES@/store store && @STRATA@ put store docs 2 - --name usage </dev/null
