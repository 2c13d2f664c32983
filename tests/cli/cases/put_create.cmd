cp -r @FIXTURES@/store store && printf 'first\n' | @STRATA@ put store 9 1 - --create fresh --region-metadata '{"new":true}' --name one && ls store && @STRATA@ context store fresh:one
