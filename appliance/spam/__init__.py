"""The learning spam filter: a small naive Bayes with Robinson-Fisher chi-square combining.

Why our own and not a library: the classifiers that do this job well (SpamBayes,
SpamAssassin's Bayes, bogofilter, DSPAM) are either unmaintained Python 2 code or C/Perl
programs with their own daemons and stores, and general machine-learning libraries
(scikit-learn) are large, batch-trained and cannot keep per-account counts in SQLite with
exact unlearning. The method itself is short and well documented (Gary Robinson, "A
Statistical Approach to the Spam Problem", 2003; SpamBayes' `classifier.py`), so we keep it
in a few small modules:

- `tokenizer`: message bytes to a bounded set of tokens (pure).
- `classifier`: token counts to a spam probability, and the probability to points (pure).
- `store`: the token counts in SQLite (`data_dir/spam/bayes.db`, WAL, shared by the MX
  worker processes, the IMAP trainer and the CLI): one model per account plus the global
  model (account "").
- `training`: learning a message (with SpamAssassin's unlearn-the-other-class-first rule),
  the IMAP Junk-move trainer thread, and corpus loading for `mailstead spam train`.
"""
