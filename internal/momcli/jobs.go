package momcli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/momgate/momgate/internal/admin"
)

// PrintJobStart starts a job on the MOM at dir and prints it.
func PrintJobStart(ctx context.Context, dir string, a admin.JobStartArgs, w io.Writer, asJSON bool) error {
	var ji admin.JobInfo
	if err := call(ctx, dir, admin.OpJobStart, a, &ji); err != nil {
		return err
	}
	if asJSON {
		return writeJSON(w, ji)
	}
	fmt.Fprintf(w, "job %s started: polling %s every %s (retry budget %s)\n", ji.Name, strings.Join(a.Sisters, ","), ji.Interval, ji.Budget)
	return nil
}

// PrintJobStop stops a job on the MOM at dir and prints its final counters.
func PrintJobStop(ctx context.Context, dir, name string, w io.Writer, asJSON bool) error {
	var ji admin.JobInfo
	if err := call(ctx, dir, admin.OpJobStop, admin.JobArgs{Name: name}, &ji); err != nil {
		return err
	}
	if asJSON {
		return writeJSON(w, ji)
	}
	fmt.Fprintf(w, "job %s stopped: %d polls ok, %d failed, %d re-admissions, %d disruptions\n",
		ji.Name, ji.PollsOK, ji.PollsFailed, ji.Readmissions, ji.Disruptions)
	return nil
}

// PrintJobs lists the jobs of the MOM at dir, one row per sister.
func PrintJobs(ctx context.Context, dir string, w io.Writer, asJSON bool) error {
	var jobs []admin.JobInfo
	if err := call(ctx, dir, admin.OpJobList, nil, &jobs); err != nil {
		return err
	}
	if asJSON {
		return writeJSON(w, jobs)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tSISTER\tADDRESS\tPROTO\tCONNECTED\tPOLLS OK\tFAILED\tREADMITTED\tDISRUPTIONS\tLAST ERROR")
	for _, j := range jobs {
		for _, s := range j.Sisters {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%d\t%d\t%d\t%d\t%s\n", j.Name, s.Name, dash(s.Addr), dash(s.Protocol),
				s.Connected, s.PollsOK, s.PollsFailed, s.Readmissions, s.Disruptions, dash(s.LastError))
		}
	}
	return tw.Flush()
}
