cp -r @FIXTURES@/store store && @STRATA@ put store docs 18446744073709551616 - </dev/null
