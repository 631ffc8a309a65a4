"""The State Council's holidays and make-up workdays (调休), as the ``chinese-calendar`` package keeps them.

Each year's arrangement is fixed by a notice of the General Office of the State Council (国务院办公厅关于
××××年部分节假日安排的通知), published on www.gov.cn each autumn under the 《全国年节及纪念日放假办法》;
the package (PyPI ``chinesecalendar``, imported as ``chinese_calendar``) transcribes every notice from 2004 on
and is released within days of a new one. The notices of recent years:

- 2026: https://www.gov.cn/zhengce/content/202511/content_7047090.htm (元旦 1月1-3日, 1月4日上班; 春节 2月15-23日,
  2月14日、28日上班; 清明 4月4-6日; 劳动节 5月1-5日, 5月9日上班; 端午 6月19-21日; 中秋 9月25-27日;
  国庆 10月1-7日, 9月20日（周日）、10月10日（周六）上班)
- 2025: https://www.gov.cn/zhengce/content/202411/content_6986382.htm (the first year under the revised
  放假办法, 国务院令第795号: 春节 and 劳动节 one day longer)
- 2024: https://www.gov.cn/zhengce/content/202310/content_6911527.htm
- 2023: http://www.gov.cn/zhengce/content/2022-12/08/content_5730844.htm
- 2022: http://www.gov.cn/zhengce/content/2021-10/25/content_5644835.htm
- 2021: http://www.gov.cn/zhengce/content/2020-11/25/content_5564127.htm
- 2020: http://www.gov.cn/zhengce/content/2019-11/21/content_5454164.htm, and the Spring Festival extended to
  2 February: http://www.gov.cn/zhengce/content/2020-01/27/content_5472352.htm
- 2019: http://www.gov.cn/xinwen/2018-12/06/content_5346287.htm, and the Labour Day change:
  http://www.gov.cn/zhengce/content/2019-03/22/content_5375877.htm
- 2015, the 70th anniversary holiday of 3-4 September: http://www.gov.cn/zhengce/content/2015-05/13/content_9742.htm

The first ``flask db upgrade`` loads every year the installed package knows; a year it does not know yet
(the notice comes out in November or December) is imported with ``flask calendar import FILE.csv`` or by a
later release that ships a newer package.
"""

from __future__ import annotations

from datetime import date

import chinese_calendar

# The holidays' names as the notices write them (the package abbreviates some: 中秋, 清明, 端午).
NAMES_ZH = {
    "New Year's Day": "元旦",
    "Spring Festival": "春节",
    "Tomb-sweeping Day": "清明节",
    "Labour Day": "劳动节",
    "Dragon Boat Festival": "端午节",
    "National Day": "国庆节",
    "Mid-autumn Festival": "中秋节",
    "Anti-Fascist 70th Day": "抗战胜利70周年纪念日",
}
MAKE_UP_SUFFIX = "调休上班"


def source() -> str:
    """Where the days come from, for the record (``chinesecalendar 1.11.0``)."""
    return f"chinesecalendar {chinese_calendar.__version__}"


def _name(english: str) -> str:
    try:
        return NAMES_ZH.get(english) or chinese_calendar.Holiday(english).chinese
    except ValueError:
        return english


def official_days() -> list[tuple[date, bool, str]]:
    """Every day of every known year that breaks the Monday-Friday rule or is part of a holiday:
    ``(day, workday, name)``; holidays are ``workday=False`` (weekend days inside a holiday are listed too,
    with the holiday's name), make-up workdays ``workday=True`` named ``国庆节调休上班``."""
    days = {d: (False, _name(name)) for d, name in chinese_calendar.holidays.items()}
    days.update({d: (True, _name(name) + MAKE_UP_SUFFIX) for d, name in chinese_calendar.workdays.items()})
    return [(d, workday, name) for d, (workday, name) in sorted(days.items())]


def known_years() -> range:
    """The years the package has a notice for."""
    years = [d.year for d in chinese_calendar.holidays]
    return range(min(years), max(years) + 1)
