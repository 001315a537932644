# This file is part of HRP.  The COPYRIGHT file at the top level of this
# repository contains the full copyright notices and license terms.
"""The arithmetic of replenishment (补货), free of the database so that the
benchmarks can backtest it on generated histories.

Daily demand is summarised over a window of calendar days (the days
without demand count as zeros); the supplier's lead time in days is
measured from past receipts.  The safety stock covers the variability of
both during the lead time at the service level (the probability of not
running out during a replenishment cycle):

    safety stock  = z(service level) * sqrt(L * sd_d^2 + d^2 * sd_L^2)
    reorder point = d * L + safety stock

where d and sd_d are the daily demand's mean and standard deviation, L
and sd_L the lead time's."""
import math
from statistics import NormalDist


def demand_statistics(total, total_squares, days):
    """The mean and standard deviation (sample) of a daily demand whose sum
    over days calendar days is total and the sum of its squares
    total_squares"""
    if days <= 0:
        raise ValueError("days must be positive")
    mean = total / days
    if days < 2:
        return mean, 0.0
    variance = (total_squares - total * total / days) / (days - 1)
    return mean, math.sqrt(max(variance, 0.0))


def lead_time_statistics(samples):
    "The mean and standard deviation of lead times in days"
    samples = list(samples)
    if not samples:
        return None, None
    mean = sum(samples) / len(samples)
    if len(samples) < 2:
        return mean, 0.0
    variance = sum((s - mean) ** 2 for s in samples) / (len(samples) - 1)
    return mean, math.sqrt(variance)


def z_score(service_level):
    if not 0 < service_level < 1:
        raise ValueError("service level must be in (0, 1)")
    return NormalDist().inv_cdf(service_level)


def safety_stock(service_level, mean, std, lead_time, lead_time_std=0.0):
    "The safety stock of a daily demand (mean, std) over a lead time"
    spread = lead_time * std ** 2 + (mean * (lead_time_std or 0.0)) ** 2
    return max(z_score(service_level) * math.sqrt(spread), 0.0)


def reorder_point(mean, lead_time, safety):
    "The stock at which to order: the lead time's demand plus the safety"
    return mean * lead_time + safety


def order_up_to(reorder, mean, review_days, maximum=None):
    """The stock an order restores: the manual maximum when there is one,
    else the reorder point plus the demand of a review period; never below
    the reorder point"""
    if maximum is not None:
        return max(maximum, reorder)
    return reorder + mean * review_days
