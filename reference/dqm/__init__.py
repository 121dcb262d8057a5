"""Reference data-quality-monitoring chain: synthetic LAr calorimeter data (16 features per
lumiblock), LSTM and xLSTM autoencoders trained on good data, and a student network that
predicts the teacher's reconstruction loss.
"""
