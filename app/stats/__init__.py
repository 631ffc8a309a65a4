"""Figures a reviewer lives by (销号率, 按期率, 网格内化解率, time to close) and volunteer points (积分制)."""
