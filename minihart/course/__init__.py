"""The course kit: what the tutorials need beyond the tracker itself, off the reading path.

* :mod:`minihart.course.checks`: the check of every exercise of the notebooks (each fails with a
  message saying what is wrong until the answer is right);
* :mod:`minihart.course.lstm`: a bare LSTM run over a whole sequence and its backpropagation
  through time (notebook 05; HART runs its LSTM step inside its own loop over time).

Grading a student's ops against finite differences and against minihart is
``python -m minihart.gradcheck --impl student.py`` (:mod:`minihart.gradcheck.kit`).
"""
