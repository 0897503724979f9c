// The "Usage" page: tokens per day for the last 30 days, stacked by key, model or provider, a table and CSV
// export.
#pragma once

#include "usagestore.h"

#include <QColor>
#include <QHash>
#include <QList>
#include <QWidget>

class QBarCategoryAxis;
class QBarSet;
class QChart;
class QChartView;
class QComboBox;
class QLabel;
class QPushButton;
class QStackedBarSeries;
class QStandardItemModel;
class QTableView;
class QValueAxis;

namespace keyrelay {

class UsagePage : public QWidget
{
    Q_OBJECT
public:
    static constexpr int Days = 30;
    /// Bars stack at most this many keys, models or providers; the smaller rest is one "Other" part.
    static constexpr int MaxSeries = 8;
    enum Column {
        DayColumn,
        GroupColumn,
        RequestsColumn,
        PromptColumn,
        CompletionColumn,
        TotalColumn,
        ColumnCount
    };

    /// The colour of a key (by its key id), model or provider in the chart: the same in every session.
    static QColor colorFor(const QString &id);
    /// The colours of the parts of one chart: colorFor() each, with clashes told apart by id order.
    static QHash<QString, QColor> colorsFor(QStringList ids);

    /// Nothing is owned; @p store must outlive the page.
    explicit UsagePage(UsageStore *store, QWidget *parent = nullptr);

    UsageStore::GroupBy groupBy() const;
    void setGroupBy(UsageStore::GroupBy by);

    /// Reads the store again and redraws the chart, the table and the summary.
    void refresh();
    /// The table's rows (newest day first) as CSV with a header line.
    QString toCsv() const;
    /// Writes toCsv() to @p path. Returns false with @p error on failure.
    bool exportCsv(const QString &path, QString *error) const;

    QChart *chart() const { return m_chart; }
    QChartView *chartView() const { return m_chartView; }
    QStackedBarSeries *series() const { return m_series; }
    QBarCategoryAxis *dayAxis() const { return m_dayAxis; }
    QTableView *view() const { return m_view; }
    QStandardItemModel *model() const { return m_model; }
    QComboBox *groupCombo() const { return m_groupCombo; }
    QPushButton *refreshButton() const { return m_refresh; }
    QLabel *summaryLabel() const { return m_summary; }
    QLabel *problemLabel() const { return m_problem; }
    /// What the table shows, in its order.
    QList<UsageRow> rows() const { return m_rows; }

protected:
    void showEvent(QShowEvent *event) override;

private:
    QLayout *buildToolbar();
    QChartView *buildChart();
    QTableView *buildTable();
    void updateChart(const QList<UsageRow> &rows, const QDate &today);
    void updateTable();
    void updateSummary(const QDate &today);
    void showProblem(const QString &problem);
    void onStoreFlushed();
    void exportWithDialog();
    /// What a chart part stands for: the key id, model or provider id of @p row.
    QString groupId(const UsageRow &row) const;
    QString groupName(const UsageRow &row) const;
    QString groupHeader() const;

    UsageStore *m_store;
    QList<UsageRow> m_rows;
    bool m_dirty = true;
    QComboBox *m_groupCombo = nullptr;
    QPushButton *m_refresh = nullptr;
    QPushButton *m_export = nullptr;
    QLabel *m_summary = nullptr;
    QLabel *m_problem = nullptr;
    QChart *m_chart = nullptr;
    QChartView *m_chartView = nullptr;
    QStackedBarSeries *m_series = nullptr;
    QBarCategoryAxis *m_dayAxis = nullptr;
    QValueAxis *m_tokenAxis = nullptr;
    QStandardItemModel *m_model = nullptr;
    QTableView *m_view = nullptr;
};

} // namespace keyrelay
