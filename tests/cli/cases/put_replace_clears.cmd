cp -r @FIXTURES@/store store && printf 'replaced\n' >f && @STRATA@ put --name= --metadata '' store docs 0 f && @STRATA@ context store docs:0
