cp -r @FIXTURES@/store store && printf 'on disk\n' | @STRATA@ put store notes 12 - --name new && @STRATA@ ls store/notes.region && @STRATA@ verify store/notes.region | sed 's#.*/##'
