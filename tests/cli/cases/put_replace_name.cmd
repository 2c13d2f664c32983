cp -r @FIXTURES@/store store && printf 'x\n' >f && @STRATA@ put store 1 0 f --name=renamed && @STRATA@ context store docs:renamed
