cp -r @FIXTURES@/store store && @STRATA@ put store docs 0 - --metadata '{bad' </dev/null && @STRATA@ context store docs:0
