cp -r @FIXTURES@/store store && printf 'replaced\n' >f && @STRATA@ put store docs 0 f && @STRATA@ context store docs:intro
